// Sortable tables without a server: click a header of a table with class "xf-sortable" to sort its rows
// by that column (again to reverse). Cells carry their numeric value in data-sort; empty cells sort last.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("table.xf-sortable").forEach(function (table) {
    var headers = table.querySelectorAll("thead tr:last-child th");
    headers.forEach(function (th, col) {
      th.style.cursor = "pointer";
      th.title = "Sort by this column";
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var offset = rows.length ? rows[0].cells.length - headers.length : 0;  // the row-header column
        var asc = th.getAttribute("data-dir") !== "asc";
        headers.forEach(function (h) { h.removeAttribute("data-dir"); h.classList.remove("xf-asc", "xf-desc"); });
        th.setAttribute("data-dir", asc ? "asc" : "desc");
        th.classList.add(asc ? "xf-asc" : "xf-desc");
        function key(row) {
          var cell = row.cells[col + offset];
          var v = cell ? cell.getAttribute("data-sort") : null;
          if (v === null || v === "") return null;
          var f = parseFloat(v);
          return isNaN(f) ? v : f;
        }
        rows.sort(function (a, b) {
          var x = key(a), y = key(b);
          if (x === null && y === null) return 0;
          if (x === null) return 1;
          if (y === null) return -1;
          if (x < y) return asc ? -1 : 1;
          if (x > y) return asc ? 1 : -1;
          return 0;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
});
