"""Staff-voice gates: decide on each multichannel voice window, before the voice model, whether it is the customer's."""
