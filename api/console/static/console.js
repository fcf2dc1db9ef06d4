/* Draws the console's time-series charts with uPlot from the JSON each page holds beside its table. */
(function () {
  "use strict";
  // Okabe-Ito: told apart with the common colour-vision deficiencies
  var COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442"];

  function draw(el) {
    var data = JSON.parse(document.getElementById(el.dataset.chart).textContent);
    var series = [{}].concat(data.series.map(function (pair, i) {
      return {label: pair[0], stroke: COLORS[i % COLORS.length], width: 2, points: {show: data.t.length <= 48}};
    }));
    var width = function () { return Math.max(el.clientWidth, 260); };
    var plot = new uPlot({
      width: width(), height: 240, series: series, scales: {x: {time: true}},
      // UTC, as the table beside it and every time on the page
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      axes: [{}, {label: el.dataset.unit, size: 60}]
    }, [data.t].concat(data.series.map(function (pair) { return pair[1]; })), el);
    if (window.ResizeObserver) {
      new ResizeObserver(function () { plot.setSize({width: width(), height: 240}); }).observe(el);
    }
  }

  if (window.uPlot) {
    document.querySelectorAll("[data-chart]").forEach(draw);
  }
})();
