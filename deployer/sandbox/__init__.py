"""The embedded local AWS: a moto server plus a data plane that makes it behave like AWS.

Only used when deployer.yaml's target is the sandbox. Production code never imports it,
except `deployer.target`, which picks the endpoint and the builder access for a target.
"""
