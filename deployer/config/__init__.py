"""deployer.yaml: what the file may declare, by section, and its loading. Nothing is
re-exported here: import a thing from the module that defines it.

- loading: load_config (file/field/reason errors, exit 2), LoadedConfig, json_schema;
- model: DeployConfig, the whole file, and the checks that span sections;
- target, bake, fleet, network, strategy, observability: one section each;
- base: what every section shares (strict models, patterns, durations).

The config holds only what the file declares: the region deployer acts in is resolved where
the target is wired (deployer.target), and whether Apprise knows a notify URL's scheme is
asked where notifications are set up (deployer.output.notify).
"""
