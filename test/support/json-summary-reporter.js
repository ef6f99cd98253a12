// A jest reporter that writes the aggregated results (counts only) to a file for .ci/run.
const fs = require('fs');

class JsonSummaryReporter {
  constructor(_globalConfig, options) {
    this.outputFile = options.outputFile;
  }

  onRunComplete(_contexts, results) {
    const { numPassedTests, numFailedTests, numTotalTests, numPendingTests } = results;
    fs.writeFileSync(this.outputFile, JSON.stringify({ numPassedTests, numFailedTests, numTotalTests, numPendingTests }));
  }
}

module.exports = JsonSummaryReporter;
