"""The ROS-free caption service under the captioner node (no ROS import)."""
