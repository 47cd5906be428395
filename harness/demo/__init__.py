"""Seed 004's interactive similarity app as a local web page: draw or drop images, see a recorded run's neighbours.

`harness demo [STUDY] [--run RUN_ID]` serves one recorded run: `runs` picks it and checks its saved weights,
`engine` embeds the run's reference set and answers queries (pure Python, testable without a browser), `images`
turns uploads into model inputs with one clear message per bad input, `server` is the thin HTTP layer (FastAPI),
and `static/` the page (plain HTML and JavaScript, nothing fetched from outside).
"""
