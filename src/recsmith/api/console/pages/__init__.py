"""The console's pages, one router per area (each module's ``router``)."""
