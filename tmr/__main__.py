from tmr.cli import app

app(prog_name="tmr")
