# Home-energy gateway firmware: see README.md and docs/architecture.md.
VERSION = "0.1.0"
