// Filters the search page's list by the words of `?q=` (every word must appear). The page is
// the whole list without it. Copied by `cargo xtask codegen` from templates/reference.
(function () {
  var query = new URLSearchParams(window.location.search).get("q") || "";
  var input = document.getElementById("q");
  if (input) input.value = query;
  var words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return;
  var shown = 0;
  document.querySelectorAll("#results li").forEach(function (item) {
    var text = (item.getAttribute("data-text") || "").toLowerCase();
    var match = words.every(function (word) { return text.indexOf(word) >= 0; });
    item.hidden = !match;
    if (match) shown += 1;
  });
  document.getElementById("status").textContent = shown + " result(s) for \u201c" + query + "\u201d";
})();
