"""The application layer: one module per command of the ``mobivision`` console script and of ``tools/*.py``.

Commands parse their arguments, call the Lightning layer (``mobivision.tasks``) or the library, and turn a user
mistake into one ``error: ...`` line and exit code 2. They use tasks only through the task protocol
(``mobivision.tasks.base.TaskModule``; ARCHITECTURE.md, "The task protocol").
"""
