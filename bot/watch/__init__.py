"""The watcher: coverage checked on a schedule, one alert per change of state."""
