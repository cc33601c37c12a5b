"""The applications: the ``gingham`` command line (:mod:`.cli`, its evaluation commands in
:mod:`.evaluation_cli`) and the HTTP server (:mod:`.server`)."""
