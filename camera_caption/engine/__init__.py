"""Captioning backends behind one small interface (no ROS import)."""
