"""Showing the product without a counter: generated demo media, scripted readings, customer scenarios."""
