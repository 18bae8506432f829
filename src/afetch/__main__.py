from afetch.cli.entry import run

run()
