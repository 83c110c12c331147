# Application entry point. Ctrl-C at the serial console stops it and leaves the REPL.
from m2m import app

app.main()
