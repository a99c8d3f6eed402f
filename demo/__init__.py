"""``harness demo``: the shapes pipeline (``demo.command``) and the one-minute tour (``demo.tour``)."""
