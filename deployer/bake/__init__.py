"""Image baking: the artifact, the ansible-runner and Fabric edges, and the builder lifecycle."""
