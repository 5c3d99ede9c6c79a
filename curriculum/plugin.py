from lms.plugins import Plugin


class CurriculumPlugin(Plugin):
    """Courses as versioned files: loader, validator, importer and online lesson delivery."""

    name = "curriculum"


plugin = CurriculumPlugin()
