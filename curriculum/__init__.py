"""curriculum plugin of Blended LMS."""
