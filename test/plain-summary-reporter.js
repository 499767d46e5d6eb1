// Prints one plain closing line, "jest: N passed, N failed, N skipped", that tools reading the
// end of a CI log can count without knowing jest's own summary format.
class PlainSummaryReporter {
  onRunComplete(_contexts, results) {
    const { numPassedTests, numFailedTests, numPendingTests, numTodoTests } = results;
    process.stdout.write(
      `jest: ${numPassedTests} passed, ${numFailedTests} failed, ${numPendingTests + numTodoTests} skipped\n`,
    );
  }
}

module.exports = PlainSummaryReporter;
