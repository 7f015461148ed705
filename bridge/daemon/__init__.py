"""The daemon side: configuration, cotyledon manager and workers, reload,
systemd notifications, health and start-up checks."""
