from sera_cli.cli.main import run

run()
