from lms.plugins import Plugin


class LabsPlugin(Plugin):
    """Offline lab sessions at training-base sites: schedule, bookings and on-site attendance."""

    name = "labs"


plugin = LabsPlugin()
