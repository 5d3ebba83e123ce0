"""
The user-facing contract, at the bottom of the package.

Every parameter and launch argument, the constants they name and the
start-up errors.  Nothing here imports the rest of the package, ROS,
torch, transformers or OpenCV, so the launch file and every node can read
the contract without loading a model's libraries.
"""
