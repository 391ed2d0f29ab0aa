"""The operator process: settings, Kopf handlers, Kubernetes access and the CLI."""
