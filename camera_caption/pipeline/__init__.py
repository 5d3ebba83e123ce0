"""The captioning worker, its gates, settings and figures (no ROS import)."""
