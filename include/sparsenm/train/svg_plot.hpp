// SPDX-License-Identifier: Apache-2.0
// A tiny SVG line-plot writer (no dependency): named series of (x, y) points, linear axes with
// "nice" ticks, a legend, and one distinct colour per series. Enough for training curves.
#ifndef SPARSENM_TRAIN_SVG_PLOT_HPP
#define SPARSENM_TRAIN_SVG_PLOT_HPP

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "../core/error.hpp"

namespace sparsenm {

/// A line plot written as a standalone SVG document (no dependency): named series of (x, y)
/// points on linear axes with 1-2-5 ticks, a legend, one colour per series (ten, then repeated).
/// Enough for training curves.
/// \code
///   LinePlot plot("Fashion-MNIST", "epoch", "test accuracy");
///   plot.add_series("dense", epochs, dense_acc);
///   plot.add_series("chtsnm 1:4", epochs, sparse_acc);
///   plot.save("accuracy.svg");
/// \endcode
class LinePlot {
 public:
  /// A plot with a title and axis labels (plain text, escaped on output) and no series yet.
  LinePlot(std::string title, std::string x_label, std::string y_label)
      : m_title(std::move(title)), m_x_label(std::move(x_label)), m_y_label(std::move(y_label)) {}

  /// Adds a series; xs and ys must have the same length. Non-finite points are skipped.
  void add_series(const std::string& name, const std::vector<double>& xs,
                  const std::vector<double>& ys);
  /// Number of series added so far.
  std::size_t series_count() const { return m_series.size(); }
  /// The SVG document, `width` x `height` pixels; the axes span all finite points of all series.
  std::string svg(int width = 760, int height = 440) const;
  /// Writes svg(width, height) to `path`; throws sparsenm::Error naming the path if it cannot be
  /// opened or written.
  void save(const std::string& path, int width = 760, int height = 440) const;

  /// Tick positions covering [lo, hi] with a 1-2-5 step (about `target` ticks).
  static std::vector<double> nice_ticks(double lo, double hi, int target = 6);
  /// Escapes &, <, >, " for SVG text.
  static std::string escape(const std::string& s);

 private:
  struct Series {
    std::string name;
    std::vector<double> xs, ys;
  };
  std::string m_title, m_x_label, m_y_label;
  std::vector<Series> m_series;
};

// ---------------------------------------------------------------------------------------------

inline void LinePlot::add_series(const std::string& name, const std::vector<double>& xs,
                                 const std::vector<double>& ys) {
  SPARSENM_CHECK(xs.size() == ys.size(), "LinePlot::add_series('", name, "'): xs has ", xs.size(),
                 " points but ys has ", ys.size());
  Series s{name, {}, {}};
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (!std::isfinite(xs[i]) || !std::isfinite(ys[i])) continue;
    s.xs.push_back(xs[i]);
    s.ys.push_back(ys[i]);
  }
  m_series.push_back(std::move(s));
}

inline std::vector<double> LinePlot::nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double f : {1.0, 2.0, 5.0, 10.0})
    if (f * mag >= raw) {
      step = f * mag;
      break;
    }
  std::vector<double> ticks;
  // k * step (not repeated addition) so ticks do not drift; %g prints them cleanly.
  for (long k = static_cast<long>(std::ceil(lo / step - 1e-9)); k * step <= hi + step * 1e-9; ++k)
    ticks.push_back(double(k) * step);
  return ticks;
}

inline std::string LinePlot::escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

inline std::string LinePlot::svg(int width, int height) const {
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const Series& s : m_series)
    for (std::size_t i = 0; i < s.xs.size(); ++i) {
      x0 = std::min(x0, s.xs[i]);
      x1 = std::max(x1, s.xs[i]);
      y0 = std::min(y0, s.ys[i]);
      y1 = std::max(y1, s.ys[i]);
    }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y0 -= 0.5, y1 += 0.5;
  const double ypad = 0.05 * (y1 - y0);
  y0 -= ypad;
  y1 += ypad;
  const double left = 70, right = 190, top = 40, bottom = 55;
  const double pw = width - left - right, ph = height - top - bottom;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return top + (1 - (y - y0) / (y1 - y0)) * ph; };
  char buf[512];
  std::string out;
  std::snprintf(buf, sizeof buf,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
                "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                width, height, width, height);
  out += buf;
  std::snprintf(buf, sizeof buf,
                "<text x=\"%.1f\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">",
                left + pw / 2);
  out += buf + escape(m_title) + "</text>\n";
  for (double t : nice_ticks(y0, y1)) {
    if (t < y0 || t > y1) continue;
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                  left, py(t), left + pw, py(t), left - 6, py(t) + 4, t);
    out += buf;
  }
  for (double t : nice_ticks(x0, x1)) {
    if (t < x0 || t > x1) continue;
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                  px(t), top, px(t), top + ph, px(t), top + ph + 18, t);
    out += buf;
  }
  std::snprintf(buf, sizeof buf,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                "stroke=\"black\"/>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                left, top, pw, ph, left + pw / 2, double(height) - 12);
  out += buf + escape(m_x_label) + "</text>\n";
  std::snprintf(
      buf, sizeof buf,
      "<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.1f)\">",
      top + ph / 2, top + ph / 2);
  out += buf + escape(m_y_label) + "</text>\n";
  for (std::size_t k = 0; k < m_series.size(); ++k) {
    const Series& s = m_series[k];
    const char* c = colors[k % 10];
    std::string pts;
    for (std::size_t i = 0; i < s.xs.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%s%.2f,%.2f", i ? " " : "", px(s.xs[i]), py(s.ys[i]));
      pts += buf;
    }
    out += std::string("<polyline fill=\"none\" stroke-width=\"2\" stroke=\"") + c +
           "\" points=\"" + pts + "\"/>\n";
    for (std::size_t i = 0; i < s.xs.size(); ++i) {
      std::snprintf(buf, sizeof buf, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\" fill=\"%s\"/>\n",
                    px(s.xs[i]), py(s.ys[i]), c);
      out += buf;
    }
    const double ly = top + 14 + 20 * double(k);
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                  "stroke-width=\"3\"/><text x=\"%.1f\" y=\"%.1f\">",
                  left + pw + 12, ly, left + pw + 34, ly, c, left + pw + 40, ly + 4);
    out += buf + escape(s.name) + "</text>\n";
  }
  return out + "</svg>\n";
}

inline void LinePlot::save(const std::string& path, int width, int height) const {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  SPARSENM_CHECK(f != nullptr, "cannot open '", path, "' for writing");
  const std::string s = svg(width, height);
  const bool ok = std::fwrite(s.data(), 1, s.size(), f) == s.size();
  SPARSENM_CHECK(std::fclose(f) == 0 && ok, "error while writing '", path, "'");
}

}  // namespace sparsenm

#endif  // SPARSENM_TRAIN_SVG_PLOT_HPP
