"""The ground floor: ages and bins, status words, the dataset registry, file helpers and the home folder.

Everything above imports from here; nothing here imports from the rest of the package.
"""
