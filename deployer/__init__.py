"""deployer: bake, blue/green and canary releases of EC2 web apps behind an ALB."""

__version__ = "0.1.0"
