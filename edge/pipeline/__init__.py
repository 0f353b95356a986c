"""The kiosk's running pipeline: the service and its threads, analyzers, replay, live reconfiguration."""
