// SPDX-License-Identifier: Apache-2.0
// A progress bar for training epochs. On a terminal it redraws one line with '\r' (at most ten
// times a second): bar, samples done, running loss and accuracy, samples/s and ETA. Otherwise
// (a pipe, a log file, ctest) it prints nothing until finish(), which prints one plain line, so
// logs stay readable.
#ifndef SPARSENM_TRAIN_PROGRESS_HPP
#define SPARSENM_TRAIN_PROGRESS_HPP

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "../core/error.hpp"
#include "../core/types.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace sparsenm {

/// True when `f` is a terminal (POSIX isatty); false elsewhere.
inline bool is_terminal(std::FILE* f) {
#if defined(__unix__) || defined(__APPLE__)
  return ::isatty(::fileno(f)) != 0;
#else
  (void)f;
  return false;
#endif
}

/// Wall-clock stopwatch in seconds.
class Stopwatch {
 public:
  /// Starts timing now.
  Stopwatch() : m_start(std::chrono::steady_clock::now()) {}
  /// Restarts timing now.
  void reset() { m_start = std::chrono::steady_clock::now(); }
  /// Seconds since construction or the last reset() (monotonic std::chrono::steady_clock).
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
  }

 private:
  std::chrono::steady_clock::time_point m_start;
};

/// Formats seconds as "m:ss" (or "h:mm:ss").
inline std::string format_duration(double seconds) {
  const long s = seconds > 0 && seconds < 1e9 ? static_cast<long>(seconds + 0.5) : 0;
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

/// A progress bar for one training epoch. On a terminal it redraws one line in place (at most ten
/// times a second): label, bar, samples done, running loss and accuracy, samples/s and ETA.
/// Otherwise (a pipe, a log file, ctest) it prints nothing until finish(), which prints one plain
/// line, so logs stay readable.
/// \code
///   ProgressBar bar(n, "chtsnm  epoch 3/8");
///   for (...) { ...; bar.update(done, mean_loss, accuracy); }
///   bar.finish("test 88.1%");
/// \endcode
class ProgressBar {
 public:
  /// `total` samples in this epoch; `label` starts the line (e.g. "chtsnm  epoch 3/8").
  /// `interactive`: 1 redraws in place, 0 prints only at finish(), -1 (default) is_terminal(out).
  /// Throws sparsenm::Error for total < 1 or a null `out`.
  ProgressBar(Index total, std::string label, std::FILE* out = stdout, int interactive = -1);
  /// Reports `done` samples so far and the running mean loss and accuracy (in [0, 1]).
  void update(Index done, double loss, double accuracy);
  /// Prints the final line; `extra` is appended (e.g. "test 88.1%").
  void finish(const std::string& extra = "");
  /// The text of the current line without the carriage return, with a `width`-character bar
  /// (used by tests and by finish()).
  std::string line(int width = 24) const;

 private:
  Index m_total, m_done = 0;
  std::string m_label;
  std::FILE* m_out;
  bool m_tty;
  double m_loss = 0, m_acc = 0, m_last_draw = -1;
  Stopwatch m_clock;
};

// ---------------------------------------------------------------------------------------------

inline ProgressBar::ProgressBar(Index total, std::string label, std::FILE* out, int interactive)
    : m_total(total),
      m_label(std::move(label)),
      m_out(out),
      m_tty(interactive < 0 ? is_terminal(out) : interactive != 0) {
  SPARSENM_CHECK(total >= 1, "ProgressBar: total = ", total, " must be >= 1");
  SPARSENM_CHECK(out != nullptr, "ProgressBar: out must not be null");
}

inline std::string ProgressBar::line(int width) const {
  const double frac = std::min(1.0, double(m_done) / double(m_total));
  const double t = m_clock.seconds();
  const double rate = t > 0 ? double(m_done) / t : 0;
  const double eta = rate > 0 ? double(m_total - m_done) / rate : 0;
  std::string bar(static_cast<std::size_t>(width), ' ');
  const int filled = static_cast<int>(frac * width);
  for (int i = 0; i < filled; ++i) bar[static_cast<std::size_t>(i)] = '#';
  char buf[256];
  std::snprintf(buf, sizeof buf, " [%s] %3d%% %ld/%ld loss %.4f acc %5.2f%% %7.0f samples/s %s %s",
                bar.c_str(), int(frac * 100), long(m_done), long(m_total), m_loss, 100 * m_acc,
                rate, m_done >= m_total ? "took" : "ETA",
                format_duration(m_done >= m_total ? t : eta).c_str());
  return m_label + buf;
}

inline void ProgressBar::update(Index done, double loss, double accuracy) {
  m_done = std::min(done, m_total);
  m_loss = loss;
  m_acc = accuracy;
  if (!m_tty) return;
  const double t = m_clock.seconds();
  if (m_last_draw >= 0 && t - m_last_draw < 0.1 && m_done < m_total) return;
  m_last_draw = t;
  std::fprintf(m_out, "\r%s", line().c_str());
  std::fflush(m_out);
}

inline void ProgressBar::finish(const std::string& extra) {
  std::fprintf(m_out, "%s%s%s%s\n", m_tty ? "\r" : "", line().c_str(), extra.empty() ? "" : "  ",
               extra.c_str());
  std::fflush(m_out);
}

}  // namespace sparsenm

#endif  // SPARSENM_TRAIN_PROGRESS_HPP
