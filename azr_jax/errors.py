"""User-facing errors: the CLI prints these as one line, never a traceback."""


class UserError(Exception):
    """A mistake in the user's input (a path, a flag, a config value, a file's content).

    The CLI catches it and prints ``error: <message>`` on one line, exit status 2.
    Raise it with a message that names the offending thing and says what was expected.
    """


class Preempted(Exception):
    """A run stopped early on request (SIGTERM) after saving its last finished step.

    The CLI prints the message on one line and exits with ``exit_code`` (128 + SIGTERM);
    rerunning the same command resumes from the saved step.
    """

    exit_code = 143

    def __init__(self, step: int, workdir: str):
        self.step, self.workdir = step, workdir
        super().__init__(f"stopped by SIGTERM after step {step}; its checkpoint is saved in "
                         f"{workdir}; rerun the same command to resume")
