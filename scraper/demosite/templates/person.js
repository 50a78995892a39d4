// Only a browser fetches this: its requests show which pages were rendered.
document.title = document.title + " (rendered)";
