"""The demo: a sample feed and a run of the whole pipeline on the local broker."""
