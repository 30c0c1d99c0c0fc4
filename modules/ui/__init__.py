"""The Gradio page: its tabs, controls, ui-config.json, the scripts written into its <head>."""
