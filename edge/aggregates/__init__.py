"""Site aggregates for managers: a subscriber that keeps hourly figures only (SQLite), a page, CSV and metrics."""
