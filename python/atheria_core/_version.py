__version__ = "0.1.0"

# The original module exposed its version as three ints as well; derived from
# __version__ so that there is one source of truth (setup.py reads this file).
VERSION_MAJOR, VERSION_MINOR, VERSION_PATCH = (int(p) for p in __version__.split(".")[:3])
