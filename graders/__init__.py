"""graders plugin of Blended LMS."""
