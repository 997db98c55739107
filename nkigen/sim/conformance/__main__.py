"""Print the conformance table as Markdown."""

from nkigen.sim.conformance import markdown

print(markdown(), end="")
