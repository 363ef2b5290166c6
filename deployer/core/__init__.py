"""The pure core: value objects and release decisions.

Nothing here imports boto3, ansible_runner, fabric, time, the filesystem or the network
(tests/unit/test_core_is_pure.py enforces it). The engine observes, the core decides.
"""
