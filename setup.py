"""ament_python package setup for camera_caption."""

from glob import glob

from setuptools import find_packages, setup

package_name = 'camera_caption'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    # The demo model's weights, processor and tokenizer (tools/demo_model.py).
    package_data={'camera_caption.tools': ['demo_checkpoint/*']},
    data_files=[
        ('share/ament_index/resource_index/packages',
            ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config',
         glob('config/*.yaml') + glob('config/*.jinja')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,     # the demo checkpoint is read as a directory
    maintainer='camera_caption developers',
    maintainer_email='camera-caption@example.com',
    description='Live camera captioning with BLIP-2 on ROS 2.',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'camera_node = camera_caption.nodes.camera_node:main',
            'captioner_node = camera_caption.nodes.captioner_node:main',
            'caption_logger = camera_caption.nodes.caption_logger_node:main',
            'caption_memory = camera_caption.nodes.caption_memory_node:main',
            'recall = camera_caption.memory.recall_cli:main',
            'benchmark = camera_caption.tools.benchmark:main',
            'transport_benchmark = camera_caption.tools.transport_benchmark:main',
            'demo_model = camera_caption.tools.demo_model:main',
        ],
    },
)
