"""The ROS 2 nodes: parameters, topics, messages; work handed to plain modules."""
