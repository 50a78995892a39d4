// Builds the gallery from the page's encoded data: the photo list exists only after this runs.
(function () {
  var holder = document.getElementById("gallery");
  var photos = JSON.parse(atob(holder.getAttribute("data-photos")));
  var list = document.createElement("ul");
  list.className = "gallery__photos-list";
  photos.forEach(function (url) {
    var item = document.createElement("li");
    var link = document.createElement("a");
    link.setAttribute("data-photo", url);
    link.href = "#";
    item.appendChild(link);
    list.appendChild(item);
  });
  holder.appendChild(list);
})();
