"""graders plugin of Blended LMS."""

import sys

# jsonschema builds grammars for the "iri" formats when rfc3987_syntax is installed (about 1 s in every
# process that imports nbformat); no notebook schema checks those formats, so this plugin's processes
# (web server, workers, the grading command) skip them.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
