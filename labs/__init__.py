"""labs plugin of Blended LMS."""
