// Progress bar text, CSV quoting, SVG plot structure and tick placement.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include <sparsenm/train/csv.hpp>
#include <sparsenm/train/progress.hpp>
#include <sparsenm/train/svg_plot.hpp>

using namespace sparsenm;

TEST(Progress, PlainModePrintsOneLineOnFinish) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  ProgressBar bar(200, "dense epoch 1/2", f, 0);
  bar.update(100, 0.5, 0.75);
  EXPECT_EQ(std::ftell(f), 0);  // nothing while running on a non-terminal
  EXPECT_NE(bar.line().find("[############            ]  50% 100/200"), std::string::npos)
      << bar.line();
  EXPECT_NE(bar.line().find("loss 0.5000 acc 75.00%"), std::string::npos);
  EXPECT_NE(bar.line().find("ETA"), std::string::npos);
  bar.update(200, 0.25, 0.8);
  bar.finish("test 81.0%");
  std::rewind(f);
  char buf[512] = {0};
  ASSERT_NE(std::fgets(buf, sizeof buf, f), nullptr);
  const std::string s = buf;
  EXPECT_EQ(s.find('\r'), std::string::npos);
  EXPECT_NE(s.find("100% 200/200"), std::string::npos);
  EXPECT_NE(s.find("took"), std::string::npos);
  EXPECT_NE(s.find("test 81.0%\n"), std::string::npos);
  std::fclose(f);
  EXPECT_THROW(ProgressBar(0, "x", stdout, 0), Error);
}

TEST(Progress, TerminalModeRedrawsWithCarriageReturn) {
  std::FILE* f = std::tmpfile();
  ProgressBar bar(10, "x", f, 1);
  bar.update(5, 1.0, 0.5);
  bar.finish();
  std::rewind(f);
  char buf[512] = {0};
  ASSERT_NE(std::fgets(buf, sizeof buf, f), nullptr);
  EXPECT_EQ(buf[0], '\r');
  std::fclose(f);
  EXPECT_EQ(format_duration(65), "1:05");
  EXPECT_EQ(format_duration(3725), "1:02:05");
}

TEST(Csv, QuotesOnlyWhenNeeded) {
  CsvWriter w({"method", "acc"});
  w.add_row({"chtsnm,lora", "88.1"});
  w.add_row({"say \"hi\"", "1"});
  EXPECT_EQ(w.str(), "method,acc\n\"chtsnm,lora\",88.1\n\"say \"\"hi\"\"\",1\n");
  EXPECT_THROW(w.add_row({"x"}), Error);
}

TEST(SvgPlot, TicksAndSeries) {
  const auto unit = LinePlot::nice_ticks(0, 1, 5);
  const std::vector<double> expected = {0, 0.2, 0.4, 0.6, 0.8, 1.0};
  ASSERT_EQ(unit.size(), expected.size());
  for (std::size_t i = 0; i < unit.size(); ++i) EXPECT_NEAR(unit[i], expected[i], 1e-12);
  const auto t = LinePlot::nice_ticks(83.3, 89.1, 6);
  ASSERT_FALSE(t.empty());
  EXPECT_GE(t.front(), 83.3);
  EXPECT_LE(t.back(), 89.1 + 1e-9);
  LinePlot p("Test accuracy", "epoch", "accuracy (%)");
  p.add_series("dense", {1, 2, 3}, {85, 87, 88.5});
  p.add_series("a<b", {1, 2}, {80, std::nan("")});  // NaN point skipped, name escaped
  EXPECT_THROW(p.add_series("bad", {1}, {1, 2}), Error);
  const std::string s = p.svg();
  EXPECT_EQ(s.rfind("<svg", 0), 0u);
  EXPECT_NE(s.find("</svg>"), std::string::npos);
  EXPECT_NE(s.find("a&lt;b"), std::string::npos);
  std::size_t polylines = 0;
  for (std::size_t at = s.find("<polyline"); at != std::string::npos;
       at = s.find("<polyline", at + 1))
    ++polylines;
  EXPECT_EQ(polylines, 2u);
  EXPECT_EQ(s.find("nan"), std::string::npos);
}
