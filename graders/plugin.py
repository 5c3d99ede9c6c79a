from lms.plugins import Plugin


class GradersPlugin(Plugin):
    """nbgrader notebook assignments: sandboxed autograding, manual grading and feedback."""

    name = "graders"


plugin = GradersPlugin()
