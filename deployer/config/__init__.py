"""deployer.yaml: the model, by section, and its loading."""
