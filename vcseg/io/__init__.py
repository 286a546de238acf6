"""Reading and writing the files vcseg works on: masks, frames, dataset layouts."""
