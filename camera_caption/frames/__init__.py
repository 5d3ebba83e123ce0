"""Where frames come from and how they are converted (no ROS import)."""
