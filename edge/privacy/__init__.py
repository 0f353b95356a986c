"""Privacy: staff masking, staff pause, the privacy config and its profile rules, the privacy report."""
