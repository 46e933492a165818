"""The ways in: the `ttservice` command (`cli`) and the web app (`web`), thin layers over
`actions`, the store and the ProcessManager."""
