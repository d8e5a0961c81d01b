"""Operating the server: metrics, logging, the ops command line."""
