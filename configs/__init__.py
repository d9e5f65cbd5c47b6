"""Experiment configs: `--config=configs/<method>.py[:arg=value,...]`."""
